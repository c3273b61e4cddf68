-- measure_staff: per school and year, staff and full-time teacher counts by post,
-- education and title, from the one-row-per-person staff roster.
-- Output grain: one row per (year, school_code, measure_id).
with staff as (
    select * from curated_staff
),

per_school as (
    select
        year,
        school_code,
        count(*)::double as staff_count,
        count(*) filter (where is_established)::double as established_staff_count,
        count(*) filter (where is_full_time_teacher)::double as full_time_teacher_count,
        count(*) filter (where is_full_time_teacher and is_established)::double
            as established_full_time_teacher_count,
        count(*) filter (
            where is_full_time_teacher
            and highest_education in ('博士研究生', '硕士研究生', '大学本科')
        )::double as bachelor_plus_teacher_count,
        count(*) filter (
            where is_full_time_teacher and highest_education in ('博士研究生', '硕士研究生')
        )::double as postgraduate_teacher_count,
        count(*) filter (
            where is_full_time_teacher and professional_title in ('正高级', '副高级')
        )::double as senior_title_teacher_count,
        count(*) filter (where is_full_time_teacher and is_dual_qualified_teacher)::double
            as dual_qualified_teacher_count,
        count(*) filter (where is_full_time_teacher and is_professional_course_teacher)::double
            as professional_course_teacher_count,
        -- Optional columns (2024 contract): teacher honours (名优教师) of full-time teachers.
        count(*) filter (
            where is_full_time_teacher and famous_teacher_level in ('国家级', '省级', '市级')
        )::double as famous_teacher_count,
        count(*) filter (where is_full_time_teacher and famous_teacher_level is not null)::double
            as famous_teacher_reported_count,
        count(*) filter (
            where famous_teacher_level = '国家级' and famous_teacher_year = year
        )::double as new_national_famous_teacher_count,
        count(*) filter (
            where famous_teacher_level in ('省级', '市级') and famous_teacher_year = year
        )::double as new_provincial_city_famous_teacher_count
    from staff
    group by year, school_code
),

final as (
    unpivot per_school
    on columns(* exclude (year, school_code))
    into name measure_id value measure_value
)

select year, school_code, null::varchar as city_name, measure_id, measure_value from final
